"""visionfn's common code: settings, errors, storage, database, event models and cores."""
