"""The ClientApp: each SuperNode trains on its own file, named by its node config `data`."""

from core.lora.federated import deployment_client_app

app = deployment_client_app()
