"""Customers: who a call is billed to (a match on user, project or tag), at which markup, and their monthly statements.

``markup`` parses the markup a customer is added with; ``statement`` turns one month of a
customer's calls, grouped by provider and model, into a statement with exact amounts and
renders it as JSON, CSV and PDF. The database side (the customers table, the month's
query) lives beside them; these two modules are pure.
"""
