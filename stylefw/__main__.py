from stylefw.cli import main

main()
