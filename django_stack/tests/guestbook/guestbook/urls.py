from django.urls import include, path

from guestbook import views

urlpatterns = [
    path("", include("django_stack.health.urls")),
    path("", views.HomeView.as_view(), name="home"),
    path("sign/", views.sign, name="sign"),
    path("count/", views.count, name="count"),
]
handler500 = "django_stack.errors.server_error"
