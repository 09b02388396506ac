"""Application services for people and the API: the contact gallery, organisations and
accounts. Each call names its actor; visibility is enforced here, where data is queried."""
