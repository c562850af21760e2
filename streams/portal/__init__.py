"""The public credit portal (信用门户): pages at ``/`` on the API's web server, Chinese first.

``site`` is the frame (templates, guards), ``routes`` the paths; ``public`` the search, 双公示 and list pages;
``selfservice`` a signed-in subject's report and applications; ``dashboard`` a department's
figures. The pages read the same read models and submit the same ledger actions as the API.
"""
