from splitter.cli import main

main()
