"""The wallet traffic simulator and its evaluation (``secmon simulate``, ``secmon eval``).

``generate.simulate(seed, accounts, days)`` builds a population with habits
(:mod:`~secmon.sim.population`, :mod:`~secmon.sim.background`), injects labelled attack and
incident scenarios (:mod:`~secmon.sim.scenarios`) and hard negatives
(:mod:`~secmon.sim.negatives`), and returns contract events in time order plus the labels
(schema in :mod:`~secmon.sim.labels`).  :mod:`~secmon.sim.evaluate` replays the events
through the detectors and scores the findings against the labels; :mod:`~secmon.sim.report`
renders the HTML report.
"""
