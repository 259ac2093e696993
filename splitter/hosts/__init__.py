"""Host actions: everything that touches a machine rather than a database goes through Ansible playbooks."""
