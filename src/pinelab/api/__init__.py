"""HTTP plumbing shared by every router: error answers, middleware, pagination, OpenAPI."""
