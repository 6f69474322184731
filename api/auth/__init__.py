"""Who may call the API: key format and roles/scopes (``scopes``), stored keys (``keys``),
per-key rate limits (``ratelimit``) and the route guard ``Depends(require(scope))`` (``guard``)."""
