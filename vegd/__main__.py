import sys

from vegd.cli import main

sys.exit(main())
