import sys

from open_strawberry.cli.main import main

sys.exit(main())
