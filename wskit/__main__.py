"""``python -m wskit`` runs the ``wskit`` command."""

from .cli import main

raise SystemExit(main())
