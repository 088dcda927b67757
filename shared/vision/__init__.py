"""Pure vision geometry shared by the domains (faces, matching): numpy in, numpy out, no I/O."""
