"""Work-order KPIs computed from the event log (`compute`), served as `GET /api/v1/kpis`."""
