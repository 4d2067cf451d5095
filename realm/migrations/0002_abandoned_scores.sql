-- Version 2: a reign abandoned keeps only its events' points.
--
-- Until this release an abandoned reign also scored its final holdings,
-- so a Lord who walked away at once ranked above reigns played until
-- they fell (realm/reign.py's `score`: 10 points an event seen through).

UPDATE reigns SET score = 10 * told WHERE outcome = 'abandoned';
