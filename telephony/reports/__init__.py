"""Statistics and the contracts' KPIs, computed from the stored rows only.

* :mod:`~telephony.reports.periods` - report windows and intervals (15 min,
  hour, day, month) in the hotline's local time.
* :mod:`~telephony.reports.kpis` - the one place each KPI is defined, with the
  contract clause it comes from.
* :mod:`~telephony.reports.statistics` - per agent, per skill group and per
  hotline statistics.
* :mod:`~telephony.reports.availability` - the node connection history: its
  recorder (fed by the ESL connections) and the outage arithmetic.
* :mod:`~telephony.reports.outbound` - the seam where the callback and
  follow-up rows plug in (漏接回拨率, 回访覆盖率).
* :mod:`~telephony.reports.export` - the KPI table as CSV or XLSX.
"""
