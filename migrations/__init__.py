"""biobench's Alembic migrations, shipped inside the package as `biobench.migrations`."""
