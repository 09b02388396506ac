"""contactsync: a contact synchronisation hub for sales teams."""
