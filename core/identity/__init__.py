"""Who someone is and what they may do: principals, roles (rbac), tenants and their members."""
