import sys

from ablation.cli import main

sys.exit(main())
