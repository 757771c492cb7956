"""kluis: a self-hosted key vault that speaks the Azure Key Vault REST API."""

__version__ = "0.1.0"
