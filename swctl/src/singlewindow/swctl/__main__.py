from singlewindow.swctl.main import main

main()
