"""Microsoft Defender XDR incidents and Secure Score via Microsoft Graph (``security`` section)."""
