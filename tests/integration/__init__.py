"""
End-to-end tests that start real C{twistd} processes (and the fixtures they share: L{daemon},
L{receiver}). Kept apart from the in-process unit tests so those stay fast; C{.ci/run}'s
C{python -m twisted.trial tests} still runs them, as trial recurses into this package.
"""
