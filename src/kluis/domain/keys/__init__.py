"""Keys: material, crypto operations, rotation, release and backup on top of the object lifecycle."""
