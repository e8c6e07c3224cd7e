"""Microsoft Entra ID for the Microsoft connectors: app-only tokens per customer tenant through
azure-identity (``tokens``), and for the sandbox a TLS token-endpoint simulator (``simulator``)
with a throwaway CA (``pki``) and the OData ``$filter`` subset the simulators evaluate (``odata``)."""
