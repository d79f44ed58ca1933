export const CLI_NAME = 'vramseal';
