"""The "Operators" group: staff in it may see and decide funding requests and read the audit log and ledger.

Adjusting balances (ledger.add_transfer) is deliberately not in it: that is granted per person.
"""

from django.db import migrations

OPERATOR_PERMISSIONS = [
    ("funding", "view_fundingrequest"),
    ("funding", "decide_fundingrequest"),
    ("audit", "view_auditentry"),
    ("ledger", "view_ledgeraccount"),
    ("ledger", "view_transfer"),
    ("ledger", "view_asset"),
    ("auth", "view_user"),
]


def operators_create(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; this group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Operators")
    for app_label, codename in OPERATOR_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def operators_remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Operators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("funding", "0001_funding_requests"),
        ("audit", "0001_initial"),
        ("ledger", "0002_clearing_account_kind"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(operators_create, operators_remove)]
