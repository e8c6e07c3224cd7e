"""Microsoft Sentinel incidents via Azure Resource Manager (``security`` section)."""
