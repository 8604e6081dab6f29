"""The default package and renderer names, in one light module (no torch): scripts read them for
their flags' defaults before anything heavy is imported."""

DEFAULT_CHECKPOINT = "game/models/default"  # the bundled package: what play, evaluate and the benchmark use
DEFAULT_RENDERER = "default"  # names a package's (or bundle's) default renderer wherever a name is asked
