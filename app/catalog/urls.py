from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.CatalogView.as_view(), name="home"),
    path("c/<slug:slug>/", views.CategoryView.as_view(), name="category"),
    path("p/<int:pk>/<slug:slug>/", views.ProductView.as_view(), name="product"),
]
