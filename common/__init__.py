"""Small pieces shared by every package: the registry, seeding and atomic checkpoint I/O."""
