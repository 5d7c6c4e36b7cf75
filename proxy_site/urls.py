from django.contrib import admin
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView

from gateway import errors
from gateway.api import catalog, openapi, views
from gateway.api.metrics import metrics_view
from gateway.inference import views as inference
from gateway.responses import views as stored_responses

# Every endpoint, named. The inference endpoints are hot views: the ASGI app (gateway/edge/app.py)
# serves these paths itself, on the event loop, and Django sees them only for CORS preflights.
urlpatterns = [
    path("v1/chat/completions", inference.ChatCompletions.as_view(), name="chat-completions"),
    path("v1/completions", inference.Completions.as_view(), name="completions"),
    path("v1/embeddings", inference.Embeddings.as_view(), name="embeddings"),
    path("v1/responses", inference.Responses.as_view(), name="responses"),
    path("v1/responses/<str:response_id>", stored_responses.ResponseDetail.as_view(), name="response-detail"),
    path("v1/responses/<str:response_id>/input_items", stored_responses.ResponseInputItems.as_view(),
         name="response-input-items"),
    path("v1/messages", inference.Messages.as_view(), name="messages"),
    path("v1/messages/count_tokens", inference.CountTokens.as_view(), name="messages-count-tokens"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("health", views.health, name="health"),
    path("metrics", metrics_view, name="metrics"),  # (a 404 unless GATEWAY_METRICS)
    path("v1/models", views.ModelList.as_view(), name="models"),
    path("v1/models/<path:model>", views.ModelDetail.as_view(), name="model-detail"),
    path("v1/tokenize", views.Tokenize.as_view(), name="tokenize"),
    path("v1/model-options", catalog.ModelOptions.as_view(), name="model-options"),
    path("v1/route-check", catalog.RouteCheck.as_view(), name="route-check"),
    path("v1/openapi.json", openapi.OpenApiDocument.as_view(), name="openapi"),
    path("v1/docs", openapi.ApiDocs.as_view(), name="docs"),
    # Last: every other path but the admin's is answered by the 404 handler itself, even with DEBUG
    # (Django's technical 404 page would show the URL, ?auth_token= included). "admin" alone is
    # left out so that CommonMiddleware still redirects it to "admin/". (No CSRF check: a POST to
    # an unknown path is a 404, as before this pattern, not a 403 page.)
    re_path(r"^(?!admin(?:/|\Z))[\s\S]+\Z", csrf_exempt(errors.not_found), name="not-found"),
]

handler400 = "gateway.errors.bad_request"
handler404 = "gateway.errors.not_found"
handler500 = "gateway.errors.server_error"
