"""Local emulators of the provider APIs (Google People, Microsoft Graph, Salesforce, Aircall)."""
