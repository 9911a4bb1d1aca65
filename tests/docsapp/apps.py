from django.apps import AppConfig


class DocsExamplesConfig(AppConfig):
    name = "tests.docsapp"
    label = "docs_examples"
    default_auto_field = "django.db.models.BigAutoField"
