"""Legacy camera drivers: one module per CGI dialect behind the interface in ``base``."""
