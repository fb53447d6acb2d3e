from axes.backends import AxesStandaloneBackend


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout for log-ins that come with a request (the log-in page, the admin).

    Without a request (the test client's ``login``, a shell) there is no client to lock out, and
    axes would raise: those log-ins go straight to the next backend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
