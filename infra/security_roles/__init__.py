"""The buffer domain's security roles custom resource (a Lambda asset: ``index.handler``)."""
