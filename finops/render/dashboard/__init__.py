"""The web dashboard's pages as HTML: server-rendered, inline SVG charts, no script.

``layout.py`` holds the page shell, the navigation and the small pieces every page shares
(money, tiles, tables); one module per page renders that page's use-case result. Pure.
"""
