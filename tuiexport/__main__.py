from tuiexport.cli import main

raise SystemExit(main())
