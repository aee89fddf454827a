"""mars_cloudmask.infer.science: the science tools over cloud masks (the ``science`` extra).

``masks`` (finding and binarising mask files), ``evaluate`` (``cm-eval``), ``stats``
(``cm-stats``), ``view`` (matplotlib figures, ``cm-view``), ``stack`` (``cm-stack``: a season
cube), ``report`` (``cm-report``: a run's static page) and ``cli`` / ``cube_cli`` (their
command lines).  They read what the runtime writes; the runtime (``mars_cloudmask.infer``)
never imports them.
"""
