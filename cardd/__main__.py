from cardd.cli import main

main()
