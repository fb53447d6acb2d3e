from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("profile/tokens/<int:token_id>/revoke/", views.token_revoke_view, name="token-revoke"),
    path("profile/api-keys/", views.api_key_create_view, name="api-key-create"),
    path("profile/api-keys/<int:api_key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
]
