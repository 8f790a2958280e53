#!/usr/bin/env bash
# Least-privilege ACLs for Aura Orchestrator on a Kafka cluster with an authorizer
# (KRaft's org.apache.kafka.metadata.authorizer.StandardAuthorizer). Three principals:
#
#   User:aura   the service: reads anomalies, context, results, votes, registry, flags, feedback;
#               writes commands, sagas, compensations, escalations, decisions, correlations and
#               dead letters; owns its internal topics (<group.id>-*: changelogs, repartition),
#               its transactional ids (<group.id>-*) and its consumer groups (<group.id>*).
#   User:agent  agents: read commands and compensations (group aura-agents*); write results and
#               votes; register themselves on agent.registry.
#   User:tda    the TDA producer: writes anomalies and context.
#
# Usage:
#   deploy/kafka-acls.sh --bootstrap-server HOST:PORT [--command-config admin.properties] [--dry-run]
#
# It runs Kafka's own kafka-acls.sh ($KAFKA_ACLS, default `kafka-acls.sh` on PATH) once per rule;
# adding an ACL that exists is a no-op, so the script can be run again after a change. --dry-run
# prints the commands instead. Names follow Aura's defaults; override them with the variables below
# when your [topics] or group.id differ:
#   AURA_GROUP_ID (aura)  AGENTS_GROUP_ID (aura-agents)
#   AURA_PRINCIPAL (User:aura)  AGENT_PRINCIPAL (User:agent)  TDA_PRINCIPAL (User:tda)
#   TOPIC_ANOMALIES TOPIC_CONTEXT TOPIC_RESULTS TOPIC_VOTES TOPIC_REGISTRY TOPIC_FLAGS
#   TOPIC_FEEDBACK TOPIC_COMMANDS TOPIC_SAGAS TOPIC_COMPENSATIONS TOPIC_ESCALATIONS
#   TOPIC_DECISIONS TOPIC_CORRELATIONS TOPIC_DLQ
set -euo pipefail

KAFKA_ACLS=${KAFKA_ACLS:-kafka-acls.sh}
AURA_GROUP_ID=${AURA_GROUP_ID:-aura}
AGENTS_GROUP_ID=${AGENTS_GROUP_ID:-aura-agents}
AURA=${AURA_PRINCIPAL:-User:aura}
AGENT=${AGENT_PRINCIPAL:-User:agent}
TDA=${TDA_PRINCIPAL:-User:tda}

ANOMALIES=${TOPIC_ANOMALIES:-tda.anomalies}
CONTEXT=${TOPIC_CONTEXT:-tda.context}
RESULTS=${TOPIC_RESULTS:-agent.results}
VOTES=${TOPIC_VOTES:-agent.votes}
REGISTRY=${TOPIC_REGISTRY:-agent.registry}
FLAGS=${TOPIC_FLAGS:-orchestration.flags}
FEEDBACK=${TOPIC_FEEDBACK:-orchestration.feedback}
COMMANDS=${TOPIC_COMMANDS:-orchestration.commands}
SAGAS=${TOPIC_SAGAS:-orchestration.sagas}
COMPENSATIONS=${TOPIC_COMPENSATIONS:-orchestration.compensations}
ESCALATIONS=${TOPIC_ESCALATIONS:-orchestration.escalations}
DECISIONS=${TOPIC_DECISIONS:-orchestration.decisions}
CORRELATIONS=${TOPIC_CORRELATIONS:-orchestration.correlations}
DLQ=${TOPIC_DLQ:-orchestration.dlq}

connection=()
dry_run=false
while (($#)); do
    case $1 in
        --bootstrap-server) connection+=(--bootstrap-server "$2"); shift 2 ;;
        --command-config) connection+=(--command-config "$2"); shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "kafka-acls: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ ${#connection[@]} -gt 0 ]] || { echo "kafka-acls: --bootstrap-server is required" >&2; exit 2; }

# allow PRINCIPAL OPERATION... -- RESOURCE OPTIONS...
allow() {
    local principal=$1 ops=() arg
    shift
    while [[ $1 != -- ]]; do ops+=(--operation "$1"); shift; done
    shift
    local cmd=("$KAFKA_ACLS" "${connection[@]}" --add --allow-principal "$principal" "${ops[@]}" "$@")
    if $dry_run; then
        printf '%q ' "${cmd[@]}"
        echo
    else
        "${cmd[@]}" >/dev/null
    fi
}

topics() { local t; for t in "$@"; do printf -- '--topic\n%s\n' "$t"; done; }

# --- aura ----------------------------------------------------------------------------------------
# Inputs. Describe for metadata. Create and DescribeConfigs because the service creates a missing
# input with the partition count and compaction it needs (co-partitioned answers, compacted tables)
# and checks them at start-up; a platform team that creates every topic itself may drop Create.
mapfile -t aura_in < <(topics "$ANOMALIES" "$CONTEXT" "$RESULTS" "$VOTES" "$REGISTRY" "$FLAGS" "$FEEDBACK")
allow "$AURA" Read Describe Create DescribeConfigs -- "${aura_in[@]}"
# Outputs, created by the service when missing.
mapfile -t aura_out < <(topics "$COMMANDS" "$SAGAS" "$COMPENSATIONS" "$ESCALATIONS" "$DECISIONS" "$CORRELATIONS" "$DLQ")
allow "$AURA" Write Describe Create DescribeConfigs -- "${aura_out[@]}"
# Internal topics: store changelogs and the saga repartition topic, <group.id>-*.
allow "$AURA" Read Write Describe Create DescribeConfigs -- \
    --topic "$AURA_GROUP_ID-" --resource-pattern-type prefixed
# Consumer groups: <group.id> itself and the table and restore readers (<group.id>-tables, -restore).
allow "$AURA" Read Describe -- --group "$AURA_GROUP_ID" --resource-pattern-type prefixed
# Transactional producers: <group.id>-<instance>-<slot>.
allow "$AURA" Write Describe -- \
    --transactional-id "$AURA_GROUP_ID-" --resource-pattern-type prefixed

# --- agent ---------------------------------------------------------------------------------------
mapfile -t agent_in < <(topics "$COMMANDS" "$COMPENSATIONS")
allow "$AGENT" Read Describe -- "${agent_in[@]}"
mapfile -t agent_out < <(topics "$RESULTS" "$VOTES" "$REGISTRY")
allow "$AGENT" Write Describe -- "${agent_out[@]}"
allow "$AGENT" Read Describe -- --group "$AGENTS_GROUP_ID" --resource-pattern-type prefixed

# --- tda -----------------------------------------------------------------------------------------
mapfile -t tda_out < <(topics "$ANOMALIES" "$CONTEXT")
allow "$TDA" Write Describe -- "${tda_out[@]}"

$dry_run || echo "kafka-acls: ACLs for $AURA, $AGENT and $TDA are in place" >&2
