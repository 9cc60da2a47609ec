from firehook.cli import main

main()
