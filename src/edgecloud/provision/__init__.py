"""Edge provisioning: whole clusters described by a template, created on a provider."""

from edgecloud.provision.errors import Problem, TemplateError
from edgecloud.provision.models import (
    AddressRangeSpec,
    ClusterSpec,
    DatastoreSpec,
    HostSpec,
    ImageSpec,
    InputSpec,
    NetworkSpec,
    ProvisionTemplate,
    VmTemplateSpec,
)
from edgecloud.provision.template import example, load_template, password_inputs

__all__ = [
    "AddressRangeSpec",
    "ClusterSpec",
    "DatastoreSpec",
    "HostSpec",
    "ImageSpec",
    "InputSpec",
    "NetworkSpec",
    "Problem",
    "ProvisionTemplate",
    "TemplateError",
    "VmTemplateSpec",
    "example",
    "load_template",
    "password_inputs",
]
