"""A local lab of real mongod processes in the write-up's topology, managed through the same playbooks."""
