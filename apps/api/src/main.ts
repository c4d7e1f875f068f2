import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { ErrorSeverity } from '@app/common';

@Module({})
class AppModule {}

async function main() {
  const app = await NestFactory.create(AppModule, new FastifyAdapter());
  await app.listen(0, '127.0.0.1');
  console.warn('ok', ErrorSeverity.CLIENT, await app.getUrl());
  await app.close();
}
void main();
