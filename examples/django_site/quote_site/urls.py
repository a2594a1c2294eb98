"""The site's URLs.

- ``/`` — the stock list.
- ``/ticker/<SYM>/`` — one ticker; ``/ticker/<SYM>/chart.png`` its chart;
  ``POST /ticker/<SYM>/refresh`` the "Refresh this ticker now" button.
- ``/api/ticker/<SYM>/`` (also ``/api/ticker/<SYM>.json``) — JSON;
  ``POST /api/ticker/<SYM>/refresh`` — the refresh, answered in JSON.
"""

from __future__ import annotations

from django.urls import path, re_path
from market import views

SYMBOL = r"(?P<symbol>[^/]+?)"

urlpatterns = [
    path("", views.stock_list, name="stock_list"),
    path("ticker/<str:symbol>/", views.ticker_page, name="ticker"),
    path("ticker/<str:symbol>/chart.png", views.ticker_chart, name="ticker_chart"),
    re_path(rf"^ticker/{SYMBOL}/refresh/?$", views.refresh_ticker, name="ticker_refresh"),
    path("api/ticker/<str:symbol>/", views.ticker_json, name="ticker_json"),
    re_path(rf"^api/ticker/{SYMBOL}\.json$", views.ticker_json, name="ticker_json_file"),
    re_path(
        rf"^api/ticker/{SYMBOL}/refresh/?$", views.refresh_ticker_json, name="ticker_refresh_json"
    ),
]

handler404 = "market.views.not_found"
