"""Infrastructure: settings, database and Redis connections, migrations, launcher."""
