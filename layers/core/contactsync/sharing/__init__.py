"""Sharing (seed 002), the Stream and Closest Connections (seed 000).

- ``rules``: what a viewer may see of one activity (nothing, that it happened, its content),
  as pure functions;
- ``facts``: gathering what the rules need from the store, in batches;
- ``stream``: the query layer: the Stream per contact and per company, one activity, the
  caller's own activity; visibility is enforced here, where the data is read;
- ``service``: sharing decisions (switches, the approval queue, per-contact, per-address and
  per-event content sharing, access requests) and the stored bodies that follow them;
- ``connections``: connection strengths and Closest Connections;
- ``lifecycle``: removing a user, forgetting a deleted account's activity.
"""
