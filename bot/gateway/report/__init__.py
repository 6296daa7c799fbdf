"""The desk's report for team leads: the inbox page /inbox/report and `make report`.

    data.py    the numbers, read from the gateway's store (one query module)
    plots.py   the charts, drawn server-side by matplotlib as inline SVG
    render.py  the HTML (agents/templates/report.html), for the page and the file
    page.py    the signed-in inbox page
    __main__   ``python -m bot.gateway.report``: the same report as one HTML file

Every number comes from the gateway's own tables; nothing here writes to them.
"""
