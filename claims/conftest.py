"""Claims run over the experiment grid; nothing here trains at collection time."""
