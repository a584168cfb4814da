"""The command line: parses, calls one library function, maps errors to exit codes."""
