from cardd.cli.main import main

main()
