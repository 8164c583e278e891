"""Files and run folders: reading user files, crash-safe writes, run directories, ids, shards."""
